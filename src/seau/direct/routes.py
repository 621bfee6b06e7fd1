"""Direct uploads over HTTP: the owner's API under /api/v1/direct-uploads, and the
two routes the URLs seau signs itself point at (a store that cannot sign its own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.requests import ClientDisconnect

from seau.db.models import DirectUpload, UserFile
from seau.deps import FilesWriter, IdempotencyDep, StateDep
from seau.direct.errors import (
    BadSignature,
    DirectUploadExpired,
    DirectUploadNotFound,
    DirectUploadsUnsupported,
    NotMultipart,
    PolicyViolated,
    UrlExpired,
    VerificationFailed,
)
from seau.direct.schemas import (
    DirectUploadComplete,
    DirectUploadCreate,
    DirectUploadRead,
    FormPost,
    PartNumbers,
    PartUrl,
    PartUrls,
    StoredPartRead,
    StoredParts,
)
from seau.direct.service import DirectUploads, Sending
from seau.direct.signing import DIRECT_PATH
from seau.errors import (
    BadRequest,
    ClientDisconnected,
    DatabaseUnavailable,
    HookUnavailable,
    InsufficientScope,
    InvalidFileName,
    InvalidToken,
    MalformedMultipart,
    NoFileInRequest,
    NotAuthenticated,
    PayloadTooLarge,
    QuotaExceeded,
    RejectedByHook,
    StorageUnavailableError,
    SubjectRequired,
    TokenExpired,
    TypeNotAllowed,
    UnsupportedMediaType,
    ValidationFailed,
)
from seau.files.multipart import MultipartLimits, MultipartReader, parse_boundary
from seau.files.schemas import FileRead
from seau.idempotent import IDEMPOTENCY_ERRORS, IDEMPOTENCY_KEY, once
from seau.limits import streams_body
from seau.problems import problem_responses
from seau.proxy import public_url

router = APIRouter(prefix=DIRECT_PATH, tags=["direct uploads"])

_AUTH = (NotAuthenticated, InvalidToken, TokenExpired, InsufficientScope, SubjectRequired)
_UNAVAILABLE = (StorageUnavailableError, DatabaseUnavailable)
_FIELD_LIMIT = 64 * 1024


async def get_direct(state: StateDep) -> DirectUploads:
    if state.direct is None:
        raise DirectUploadsUnsupported()
    return state.direct


DirectDep = Annotated[DirectUploads, Depends(get_direct)]


def _absolute(request: Request, url: str) -> str:
    return public_url(request, url) if url.startswith("/") else url


def _read(request: Request, sending: Sending) -> DirectUploadRead:
    row = sending.upload
    post = None
    if sending.post is not None:
        assert sending.url_expires_at is not None
        post = FormPost(
            url=_absolute(request, sending.post.url),
            fields=sending.post.fields,
            expires_at=sending.url_expires_at,
        )
    return DirectUploadRead(
        id=row.id,
        name=row.name,
        size=row.size,
        content_type=row.declared_type,
        sha256=row.sha256,
        multipart=row.handle is not None,
        part_size=row.part_size,
        part_count=_part_count(row),
        expires_at=row.expires_at,
        upload=post,
    )


def _part_count(row: DirectUpload) -> int | None:
    if row.part_size is None:
        return None
    return max(1, -(-row.size // row.part_size))


def _file(row: UserFile) -> FileRead:
    return FileRead.model_validate(row)


@router.post(
    "",
    status_code=201,
    response_model=DirectUploadRead,
    responses=problem_responses(
        *_AUTH,
        InvalidFileName,
        PayloadTooLarge,
        QuotaExceeded,
        TypeNotAllowed,
        ValidationFailed,
        RejectedByHook,
        HookUnavailable,
        DirectUploadsUnsupported,
        *IDEMPOTENCY_ERRORS,
        *_UNAVAILABLE,
    ),
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
    summary="Start a direct upload",
    description="The bytes then go to the store itself: on S3 a presigned POST (its "
    "policy fixes the key, the `Content-Type` and the exact size) or presigned part "
    "PUTs; on the local store the same kind of URLs, signed by seau and pointing at "
    "it. The declared size is reserved in the quota now. Nothing becomes a file until "
    "`POST .../{id}/complete` has verified the size, the SHA-256 and the type.",
)
async def create(
    request: Request,
    body: DirectUploadCreate,
    caller: FilesWriter,
    direct: DirectDep,
    idempotency: IdempotencyDep,
) -> DirectUploadRead | Response:
    # A retry with the same `Idempotency-Key` answers the same direct upload.
    async with once(
        request, idempotency, caller.owner, body=body.model_dump_json().encode()
    ) as run:
        if run.replay is not None:
            return run.replay
        sending = await direct.create(
            owner_id=caller.owner,
            subject=caller.subject,
            name=body.name,
            size=body.size,
            content_type=body.content_type,
            sha256=body.sha256.lower() if body.sha256 else None,
            multipart=body.multipart,
            # The answer commits with the upload's row.
            in_commit=run.in_commit(lambda made: _created(_read(request, made))),
        )
        made = _read(request, sending)
        if not run.claimed:
            return made
        return run.keep(_created(made))


def _created(made: DirectUploadRead) -> Response:
    return Response(made.model_dump_json(), status_code=201, media_type="application/json")


_OWNER_ERRORS = (
    *_AUTH,
    DirectUploadNotFound,
    DirectUploadExpired,
    DirectUploadsUnsupported,
    ValidationFailed,
)


@router.get(
    "/{upload_id}",
    response_model=DirectUploadRead,
    responses=problem_responses(*_OWNER_ERRORS, *_UNAVAILABLE),
    summary="A direct upload, with a fresh URL to send it",
)
async def status(
    request: Request, upload_id: str, caller: FilesWriter, direct: DirectDep
) -> DirectUploadRead:
    return _read(request, await direct.status(owner_id=caller.owner, upload_id=upload_id))


@router.post(
    "/{upload_id}/parts",
    response_model=PartUrls,
    responses=problem_responses(*_OWNER_ERRORS, NotMultipart, *_UNAVAILABLE),
    summary="URLs to send parts of a multipart direct upload",
)
async def sign_parts(
    request: Request, upload_id: str, body: PartNumbers, caller: FilesWriter, direct: DirectDep
) -> PartUrls:
    if any(not 1 <= n <= 10_000 for n in body.numbers):
        raise ValidationFailed("part numbers go from 1 to 10000")
    _, urls, expires_at = await direct.sign_parts(
        owner_id=caller.owner, upload_id=upload_id, numbers=body.numbers
    )
    return PartUrls(
        parts=[PartUrl(number=u.number, url=_absolute(request, u.url)) for u in urls],
        expires_at=expires_at,
    )


@router.get(
    "/{upload_id}/parts",
    response_model=StoredParts,
    responses=problem_responses(*_OWNER_ERRORS, NotMultipart, *_UNAVAILABLE),
    summary="The parts the store holds (to resume)",
)
async def list_parts(upload_id: str, caller: FilesWriter, direct: DirectDep) -> StoredParts:
    _, parts = await direct.list_parts(owner_id=caller.owner, upload_id=upload_id)
    return StoredParts(
        parts=[StoredPartRead(number=p.number, etag=p.etag, size=p.size) for p in parts]
    )


@router.post(
    "/{upload_id}/complete",
    status_code=201,
    response_model=FileRead,
    responses=problem_responses(
        *_OWNER_ERRORS, NotMultipart, VerificationFailed, TypeNotAllowed, *_UNAVAILABLE
    ),
    summary="Verify the bytes and make the file",
    description="Checks the stored size, the SHA-256 (the store's checksum when it "
    "verified one, else by reading the object back) and the type of the first bytes; "
    "a mismatch deletes the object and answers 422 `verification_failed` naming what "
    "differed (`differs`). Completing again answers the same file.",
)
async def complete(
    upload_id: str,
    caller: FilesWriter,
    direct: DirectDep,
    body: DirectUploadComplete | None = None,
) -> FileRead:
    parts = None
    if body is not None and body.parts is not None:
        parts = [(p.number, p.etag) for p in body.parts]
    row = await direct.complete(owner_id=caller.owner, upload_id=upload_id, parts=parts)
    return _file(row)


@router.delete(
    "/{upload_id}",
    status_code=204,
    responses=problem_responses(
        *_AUTH, DirectUploadNotFound, DirectUploadsUnsupported, ValidationFailed, *_UNAVAILABLE
    ),
    summary="Abort a direct upload",
    description="Removes what was sent and releases the reserved quota.",
)
async def abort(upload_id: str, caller: FilesWriter, direct: DirectDep) -> Response:
    await direct.abort(owner_id=caller.owner, upload_id=upload_id)
    return Response(status_code=204)


# -- the URLs seau signs (local store) -------------------------------------------

Expires = Annotated[str, Query(max_length=20)]
Signature = Annotated[str, Query(max_length=100)]
_FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "Content-Type": {"type": "string"},
                        "file": {"type": "string", "format": "binary"},
                    },
                    "required": ["file"],
                }
            }
        },
        "description": "The upload's `fields`, then the bytes, last, in `file`.",
    }
}
_PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The part's bytes.",
    }
}
_SIGNED_ERRORS = (
    BadSignature,
    PolicyViolated,
    UrlExpired,
    DirectUploadNotFound,
    DirectUploadExpired,
    NotMultipart,
    PayloadTooLarge,
    MalformedMultipart,
    NoFileInRequest,
    UnsupportedMediaType,
    ValidationFailed,
    *_UNAVAILABLE,
)


@router.post(
    "/{upload_id}/object",
    status_code=204,
    responses=problem_responses(*_SIGNED_ERRORS),
    openapi_extra=_FORM_BODY,
    summary="Send a single-part upload's bytes (a URL seau signed)",
    description="A form POST like S3's: the fields of the upload's `upload.fields`, then "
    "the bytes in a field named `file`. At most the declared size is kept.",
)
@streams_body
async def receive_object(
    request: Request,
    upload_id: str,
    expires: Expires,
    signature: Signature,
    direct: DirectDep,
) -> Response:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("send multipart/form-data, the file last in `file`")
    reader = MultipartReader(
        request.stream(),
        boundary=parse_boundary(content_type),
        limits=MultipartLimits(max_parts=32),
    )
    fields: dict[str, str] = {}
    try:
        while (part := await reader.next_part()) is not None:
            if part.name == "file":
                await direct.receive_object(
                    upload_id=upload_id,
                    expires=expires,
                    signature=signature,
                    content_type=fields.get("content-type"),
                    data=part,
                )
                return Response(status_code=204)
            value = await part.read_all(limit=_FIELD_LIMIT)
            fields[(part.name or "").lower()] = value.decode("utf-8", "replace")
    except ClientDisconnect:
        raise ClientDisconnected() from None
    raise NoFileInRequest("send the bytes in a field named `file`, after the others")


@router.put(
    "/{upload_id}/parts/{number}",
    responses={
        200: {"description": "Stored; the part's `ETag` is in the header of that name."},
        **problem_responses(*_SIGNED_ERRORS),
    },
    openapi_extra=_PART_BODY,
    summary="Send one part (a URL seau signed)",
)
@streams_body
async def receive_part(
    request: Request,
    upload_id: str,
    number: int,
    expires: Expires,
    signature: Signature,
    direct: DirectDep,
) -> Response:
    if not 1 <= number <= 10_000:
        raise BadRequest("part numbers go from 1 to 10000")
    try:
        part = await direct.receive_part(
            upload_id=upload_id,
            number=number,
            expires=expires,
            signature=signature,
            data=request.stream(),
        )
    except ClientDisconnect:
        raise ClientDisconnected() from None
    return Response(status_code=200, headers={"ETag": part.etag})
