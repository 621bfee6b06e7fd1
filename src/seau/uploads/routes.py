"""The tus 1.0.0 routes under `/api/v1/uploads`: parse headers, hand bytes to the service.

Every answer carries `Tus-Resumable`, errors included; errors are problem+json
with the status codes tus defines (409, 412, 415, 423, 460, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from seau.auth.principal import Principal
from seau.deps import FilesReader, FilesWriter, IdempotencyDep, StateDep
from seau.errors import (
    ClientDisconnected,
    DatabaseUnavailable,
    HookUnavailable,
    InsufficientScope,
    InvalidFileName,
    InvalidToken,
    NotAuthenticated,
    QuotaExceeded,
    RejectedByHook,
    SeauError,
    StorageUnavailableError,
    SubjectRequired,
    TokenExpired,
    TypeNotAllowed,
    UnsupportedMediaType,
)
from seau.idempotent import IDEMPOTENCY_ERRORS, IDEMPOTENCY_KEY, Once, once
from seau.limits import streams_body
from seau.problems import problem_responses
from seau.proxy import public_url
from seau.uploads.errors import (
    BodyInterrupted,
    ChecksumMismatch,
    HeaderError,
    InvalidTusHeader,
    OffsetMismatch,
    TooManyActiveUploads,
    TusVersionUnsupported,
    UploadDataLost,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
    UploadsUnsupported,
    UploadTooLarge,
)
from seau.uploads.schemas import UploadStatus
from seau.uploads.service import UploadService
from seau.uploads.tus import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    Checksum,
    http_date,
    metadata_text,
    parse_checksum,
    parse_defer_length,
    parse_integer,
    parse_metadata,
)

PREFIX = "/api/v1/uploads"


class TusRoute(APIRoute):
    """Adds `Tus-Resumable` to every answer, including errors raised by dependencies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except SeauError as exc:
                exc.headers = {**exc.headers, "Tus-Resumable": TUS_VERSION}
                raise
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return route


router = APIRouter(prefix=PREFIX, tags=["uploads"], route_class=TusRoute)

AUTH_ERRORS = (NotAuthenticated, InvalidToken, TokenExpired, InsufficientScope, SubjectRequired)
UNAVAILABLE = (StorageUnavailableError, DatabaseUnavailable)


async def get_uploads(state: StateDep) -> UploadService:
    if state.uploads is None:
        raise UploadsUnsupported()
    return state.uploads


async def tus_version(request: Request) -> None:
    """Every request but OPTIONS names the protocol version it speaks."""
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise TusVersionUnsupported(TUS_VERSION, f"send Tus-Resumable: {TUS_VERSION}")


UploadsDep = Annotated[UploadService, Depends(get_uploads)]
TusVersion = Annotated[None, Depends(tus_version)]


# The endpoint answers both spellings: tus clients and their documentation commonly
# write it with a trailing slash, and the app gives no trailing-slash redirects (a client
# does not follow a 307 for a POST). The alias stays out of the OpenAPI document.
@router.options("/", status_code=204, include_in_schema=False)
@router.options(
    "",
    status_code=204,
    summary="What this tus server supports",
    description="`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`. "
    "Needs no token.",
)
async def options(uploads: UploadsDep) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(EXTENSIONS),
            "Tus-Max-Size": str(uploads.limits.max_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


@router.options("/{upload_id}", status_code=204, include_in_schema=False)
async def options_upload(uploads: UploadsDep) -> Response:
    return await options(uploads)


@router.post("/", status_code=201, include_in_schema=False)
@router.post(
    "",
    status_code=201,
    responses=problem_responses(
        *AUTH_ERRORS,
        InvalidTusHeader,
        InvalidFileName,
        TusVersionUnsupported,
        UploadTooLarge,
        QuotaExceeded,
        UnsupportedMediaType,
        TypeNotAllowed,
        TooManyActiveUploads,
        RejectedByHook,
        HookUnavailable,
        *IDEMPOTENCY_ERRORS,
        *UNAVAILABLE,
    ),
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
    summary="Create a resumable upload",
    description="`Upload-Length` (or `Upload-Defer-Length: 1`) and `Upload-Metadata` "
    "(`filename`, `filetype`); a body with `Content-Type: application/offset+octet-stream` "
    "holds the first bytes. Answers `Location`; the finished file gets the upload's id. "
    "The file's type is detected from the first bytes (`filetype` is kept as its "
    "`declared_type`): with `SEAU_ALLOWED_TYPES`, the request that brings them answers "
    "415 `type_not_allowed` if it may not be stored, and the upload is gone.",
)
@streams_body
async def create(
    request: Request,
    _version: TusVersion,
    caller: FilesWriter,
    uploads: UploadsDep,
    idempotency: IdempotencyDep,
) -> Response:
    # A retry of a creation (an `Idempotency-Key`) answers the same upload.
    async with once(request, idempotency, caller.owner) as run:
        if run.replay is not None:
            return run.replay
        return run.keep(await _create(request, caller, uploads, run))


async def _create(
    request: Request, caller: Principal, uploads: UploadService, run: Once
) -> Response:
    headers = request.headers
    with _tus_headers():
        length = parse_integer(headers.get("upload-length"), header="Upload-Length")
        deferred = parse_defer_length(headers.get("upload-defer-length"))
        metadata_header = headers.get("upload-metadata")
        metadata = parse_metadata(metadata_header)
        filename = metadata_text(metadata, "filename", "name")
        filetype = metadata_text(metadata, "filetype", "type")
        declared = parse_integer(headers.get("content-length"), header="Content-Length")
        checksum = parse_checksum(headers.get("upload-checksum"))
    if (length is None) == (not deferred):
        raise InvalidTusHeader("send exactly one of Upload-Length and Upload-Defer-Length: 1")
    with_body = bool(declared) or "transfer-encoding" in headers
    if with_body and not _is_offset_stream(headers.get("content-type")):
        raise UnsupportedMediaType(f"the first bytes need Content-Type: {OFFSET_CONTENT_TYPE}")
    status = await _interrupted_ok(
        uploads.create(
            owner_id=caller.owner,
            length=length,
            metadata=metadata_header,
            filename=filename,
            filetype=filetype,
            body=_body(request, idle=uploads.limits.lease.total_seconds()) if with_body else None,
            declared=declared,
            checksum=checksum,
            subject=caller.subject,
            # The answer commits with the upload's row: the upload as created, so a
            # replay of a creation with first bytes says Upload-Offset: 0, and the
            # client's PATCH from there learns the offset (409, then HEAD).
            in_commit=run.in_commit(lambda made: _created(request, made, offset=with_body)),
        )
    )
    return _created(request, status, offset=with_body)


def _created(request: Request, status: UploadStatus, *, offset: bool) -> Response:
    location = public_url(request, f"{PREFIX}/{status.id}")
    response = Response(status_code=201, headers={"Location": location})
    _describe(response, status, offset=offset)
    return response


@router.head(
    "/{upload_id}",
    responses=problem_responses(
        *AUTH_ERRORS,
        TusVersionUnsupported,
        UploadNotFound,
        UploadExpired,
        UploadLocked,
        *UNAVAILABLE,
    ),
    summary="Where an upload stands",
    description="`Upload-Offset`, `Upload-Length` (or `Upload-Defer-Length`), "
    "`Upload-Metadata`, `Upload-Expires`. Another user's upload is not found. "
    "423 while a request that received the last byte still makes the file (or, if "
    "its process died, until its lease lapses): the upload is not complete yet.",
)
async def head(
    upload_id: str, _version: TusVersion, caller: FilesReader, uploads: UploadsDep
) -> Response:
    status = await uploads.status(owner_id=caller.owner, upload_id=upload_id)
    response = Response(status_code=200, headers={"Cache-Control": "no-store"})
    _describe(response, status, offset=True, length=True)
    return response


@router.patch(
    "/{upload_id}",
    status_code=204,
    responses=problem_responses(
        *AUTH_ERRORS,
        InvalidTusHeader,
        TusVersionUnsupported,
        UploadNotFound,
        OffsetMismatch,
        UploadExpired,
        UploadDataLost,
        UploadTooLarge,
        QuotaExceeded,
        UnsupportedMediaType,
        TypeNotAllowed,
        UploadLocked,
        ChecksumMismatch,
        *UNAVAILABLE,
    ),
    summary="Append bytes to an upload",
    description="`Content-Type: application/offset+octet-stream`, `Upload-Offset` equal "
    "to the upload's offset, optionally `Upload-Checksum: sha1|sha256 BASE64` "
    "(a mismatch discards the bytes: 460) and, for a deferred length, `Upload-Length`. "
    "409 and 423 carry the current `Upload-Offset`.",
)
@streams_body
async def patch(
    request: Request,
    upload_id: str,
    _version: TusVersion,
    caller: FilesWriter,
    uploads: UploadsDep,
) -> Response:
    headers = request.headers
    if not _is_offset_stream(headers.get("content-type")):
        raise UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    with _tus_headers():
        offset = parse_integer(headers.get("upload-offset"), header="Upload-Offset")
        length = parse_integer(headers.get("upload-length"), header="Upload-Length")
        declared = parse_integer(headers.get("content-length"), header="Content-Length")
        checksum: Checksum | None = parse_checksum(headers.get("upload-checksum"))
    if offset is None:
        raise InvalidTusHeader("PATCH needs Upload-Offset")
    status = await _interrupted_ok(
        uploads.append(
            owner_id=caller.owner,
            upload_id=upload_id,
            offset=offset,
            data=_body(request, idle=uploads.limits.lease.total_seconds()),
            new_length=length,
            declared=declared,
            checksum=checksum,
        )
    )
    response = Response(status_code=204)
    _describe(response, status, offset=True)
    return response


@router.delete(
    "/{upload_id}",
    status_code=204,
    responses=problem_responses(
        *AUTH_ERRORS, TusVersionUnsupported, UploadNotFound, UploadLocked, *UNAVAILABLE
    ),
    summary="Terminate an upload",
    description="Removes an unfinished upload and its bytes. A finished upload's file "
    "stays (delete it under /api/v1/files).",
)
async def terminate(
    upload_id: str, _version: TusVersion, caller: FilesWriter, uploads: UploadsDep
) -> Response:
    await uploads.terminate(owner_id=caller.owner, upload_id=upload_id)
    return Response(status_code=204)


async def _interrupted_ok(work: Awaitable[UploadStatus]) -> UploadStatus:
    try:
        return await work
    except BodyInterrupted:
        # Only reachable when a checksum covered the body: nobody reads this answer.
        raise ClientDisconnected() from None


async def _body(request: Request, *, idle: float) -> AsyncIterator[bytes]:
    """The request body; a client that leaves, or sends nothing for ``idle``
    seconds, ends it early (`BodyInterrupted`) and the bytes so far count."""
    stream = request.stream()
    try:
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except ClientDisconnect:
                raise BodyInterrupted("the client went away") from None
            except TimeoutError:
                raise BodyInterrupted(f"no bytes for {idle:g} s") from None
            if chunk:
                yield chunk
    finally:
        await stream.aclose()


def _is_offset_stream(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == OFFSET_CONTENT_TYPE


@contextmanager
def _tus_headers() -> Iterator[None]:
    """Turns a header that does not parse into 400 `invalid_tus_header`."""
    try:
        yield
    except HeaderError as exc:
        raise InvalidTusHeader(str(exc)) from None


def _describe(
    response: Response, status: UploadStatus, *, offset: bool, length: bool = False
) -> None:
    if offset:
        response.headers["Upload-Offset"] = str(status.offset)
    if length:
        if status.length is None:
            response.headers["Upload-Defer-Length"] = "1"
        else:
            response.headers["Upload-Length"] = str(status.length)
        if status.metadata:
            response.headers["Upload-Metadata"] = status.metadata
    if status.expires_at is not None:
        response.headers["Upload-Expires"] = http_date(status.expires_at)
