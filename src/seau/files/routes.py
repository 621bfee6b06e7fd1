"""The file routes: parse and validate, hand bytes to the service, shape responses."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import SecurityScopes
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from seau.auth.principal import Principal
from seau.auth.principal import Scope as AccessScope
from seau.db.models import UserFile
from seau.deps import (
    AppState,
    FilesDep,
    FilesReader,
    FilesReaderFolded,
    FilesWriterFolded,
    LinksDep,
    StateDep,
    verified,
)
from seau.errors import (
    BadRequest,
    ClientDisconnected,
    DatabaseUnavailable,
    FileNotFound,
    HookUnavailable,
    InsufficientScope,
    InvalidCursor,
    InvalidFileName,
    InvalidLink,
    InvalidToken,
    LinkExpired,
    LinkNotFound,
    MalformedMultipart,
    NoFileInRequest,
    NotAuthenticated,
    PayloadTooLarge,
    QuotaExceeded,
    RangeNotSatisfiable,
    RejectedByHook,
    SeauError,
    StorageUnavailableError,
    SubjectRequired,
    TokenExpired,
    TooManyFiles,
    TypeNotAllowed,
    UnsupportedMediaType,
    ValidationFailed,
)
from seau.files.http import Conditions, disposition_for, plan_download
from seau.files.links import LINKS_PATH
from seau.files.multipart import MultipartLimits, MultipartReader, parse_boundary
from seau.files.schemas import (
    FileList,
    FileRead,
    FileRename,
    LinkCreate,
    LinkCreated,
    UploadResult,
)
from seau.files.service import (
    MAX_QUERY_LENGTH,
    FileService,
    Listed,
    NewFile,
    SortKey,
    StoredFile,
)
from seau.idempotent import IDEMPOTENCY_ERRORS, IDEMPOTENCY_KEY, Once, once
from seau.limits import streams_body
from seau.problems import error_response, problem_responses
from seau.proxy import public_url
from seau.settings import Settings
from seau.storage import ByteStream

router = APIRouter(prefix="/api/v1/files", tags=["files"])
links_router = APIRouter(prefix=LINKS_PATH.rstrip("/"), tags=["download links"])

AUTH_ERRORS = (NotAuthenticated, InvalidToken, TokenExpired, InsufficientScope, SubjectRequired)
UNAVAILABLE = (StorageUnavailableError, DatabaseUnavailable)

# Room for part headers and boundaries around the files' own bytes.
_MULTIPART_OVERHEAD = 64 * 1024

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more parts named `file`.",
                        }
                    },
                    "required": ["file"],
                }
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
            },
        },
        "description": "Either `multipart/form-data` with parts named `file`, or the raw "
        "bytes of one file (any other content type) with `?name=`.",
    }
}


def _file_read(row: Listed) -> FileRead:
    return FileRead.model_validate(row)


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest("Content-Length is not a number")
    return int(value)


@router.post(
    "",
    status_code=201,
    response_model=UploadResult | FileRead,
    responses=problem_responses(
        *AUTH_ERRORS,
        BadRequest,
        MalformedMultipart,
        NoFileInRequest,
        InvalidFileName,
        PayloadTooLarge,
        TooManyFiles,
        QuotaExceeded,
        UnsupportedMediaType,
        TypeNotAllowed,
        ValidationFailed,
        RejectedByHook,
        HookUnavailable,
        *IDEMPOTENCY_ERRORS,
        *UNAVAILABLE,
    ),
    openapi_extra={**_UPLOAD_BODY, "parameters": [IDEMPOTENCY_KEY]},
    summary="Upload files",
    description='`multipart/form-data` (parts named `file`) answers `{"files": [...]}`; '
    "a raw body with `?name=` answers the one file. Bytes stream to storage as they "
    "arrive; nothing is kept unless every file of the request is complete. Each "
    "file's `content_type` is detected from its first bytes (the claim is kept as "
    "`declared_type`); with `SEAU_ALLOWED_TYPES`, a type not allowed answers 415 "
    "`type_not_allowed` before the file stores a byte. With an `Idempotency-Key`, "
    "a retry within a day answers the first answer again (`Idempotent-Replayed: "
    "true`) instead of storing the files twice.",
)
@streams_body
async def upload(
    request: Request,
    caller: FilesWriterFolded,
    # One dependency for the parts, not one each: FastAPI solves every dependency
    # per request (about a sixth of a small download's event-loop time).
    state: StateDep,
    name: Annotated[
        str | None,
        Query(max_length=1024, description="File name, for a raw (non-multipart) body."),
    ] = None,
) -> UploadResult | FileRead | Response:
    owner_id, check = caller.owner_to_check()
    async with once(request, state.idempotency, owner_id, check=check) as run:
        if run.replay is not None:
            return run.replay
        made = await _upload(request, caller, state.files, state.settings, name, run)
        if not run.claimed:
            return made
        return run.keep(_created(made))


def _created(made: UploadResult | FileRead) -> Response:
    return Response(made.model_dump_json(), status_code=201, media_type="application/json")


async def _upload(
    request: Request,
    caller: Principal,
    files: FileService,
    settings: Settings,
    name: str | None,
    run: Once,
) -> UploadResult | FileRead:
    owner_id, check = caller.owner_to_check()
    content_type = request.headers.get("content-type", "")
    declared = _declared_length(request)
    try:
        if content_type.lower().startswith("multipart/"):
            limit = settings.max_upload_bytes * settings.max_files_per_request
            if declared is not None and declared > limit + _MULTIPART_OVERHEAD:
                raise PayloadTooLarge("the request is larger than the upload limit")
            rows = await files.upload_many(
                owner_id=owner_id,
                files=_multipart_files(request, settings),
                max_bytes=settings.max_upload_bytes,
                subject=caller.subject,
                check=check,
                # Every file of the request, and its answer, in one transaction.
                in_commit=run.in_commit(lambda made: _created(_upload_result(made))),
            )
            return _upload_result(rows)
        if name is None:
            raise BadRequest("a raw upload needs `?name=`; or send multipart/form-data")
        if declared is not None and declared > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"the file exceeds the limit of {settings.max_upload_bytes} bytes"
            )
        row = await files.upload(
            owner_id=owner_id,
            name=name,
            content_type=content_type or None,
            data=request.stream(),
            max_bytes=settings.max_upload_bytes,
            subject=caller.subject,
            check=check,
            size=declared,
            # One file, one transaction: a retry's answer commits with the file.
            in_commit=run.in_commit(lambda made: _created(_file_read(made))),
        )
        return _file_read(row)
    except ClientDisconnect:
        raise ClientDisconnected() from None


def _upload_result(rows: list[UserFile]) -> UploadResult:
    return UploadResult(files=[_file_read(row) for row in rows])


async def _multipart_files(request: Request, settings: Settings) -> AsyncIterator[NewFile]:
    """The parts named `file` of a multipart body, in order; other parts are skipped."""
    reader = MultipartReader(
        request.stream(),
        boundary=parse_boundary(request.headers["content-type"]),
        limits=MultipartLimits(max_parts=settings.max_files_per_request * 2 + 16),
    )
    count = 0
    while (part := await reader.next_part()) is not None:
        if part.name != "file" or not part.filename:
            # Other form fields are allowed and ignored, within a small size; so
            # is the empty `filename=""` part a browser sends for an empty input.
            await part.read_all(limit=64 * 1024)
            continue
        if count >= settings.max_files_per_request:
            raise TooManyFiles(f"at most {settings.max_files_per_request} files per request")
        count += 1
        yield NewFile(name=part.filename, content_type=part.content_type, data=part)
    if count == 0:
        raise NoFileInRequest("send at least one part named `file` with a filename")


@router.get(
    "",
    response_model=FileList,
    responses=problem_responses(*AUTH_ERRORS, InvalidCursor, ValidationFailed, *UNAVAILABLE),
    summary="List my files",
)
async def list_files(
    caller: FilesReaderFolded,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Page size.")] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    sort: Annotated[
        SortKey, Query(description="Sort key; a leading `-` sorts descending.")
    ] = "-created",
    q: Annotated[
        str | None,
        Query(
            # Bounds a search's cost: docs/decisions.md ("Searching file names").
            max_length=MAX_QUERY_LENGTH,
            # No stored name holds a control character, and PostgreSQL refuses NUL in
            # text outright (a 500 rather than an empty page).
            pattern=r"^[^\x00-\x1f\x7f-\x9f]*$",
            description="Only names containing this text.",
        ),
    ] = None,
) -> FileList:
    owner_id, pending = caller.owner_to_check()
    page = await state.files.list(
        owner_id=owner_id,
        pending=pending,
        limit=min(limit, state.settings.max_page_size),
        cursor=cursor,
        sort=sort,
        query=q,
    )
    return FileList(items=[_file_read(r) for r in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{file_id}",
    response_model=FileRead,
    responses=problem_responses(*AUTH_ERRORS, FileNotFound, ValidationFailed, *UNAVAILABLE),
    summary="A file's metadata",
)
async def get_file(file_id: str, caller: FilesReaderFolded, files: FilesDep) -> FileRead:
    owner_id, pending = caller.owner_to_check()
    return _file_read(await files.get(owner_id=owner_id, file_id=file_id, pending=pending))


@router.patch(
    "/{file_id}",
    response_model=FileRead,
    responses=problem_responses(
        *AUTH_ERRORS, FileNotFound, InvalidFileName, ValidationFailed, *UNAVAILABLE
    ),
    summary="Rename a file",
)
async def rename_file(
    file_id: str, body: FileRename, caller: FilesWriterFolded, files: FilesDep
) -> FileRead:
    owner_id, pending = caller.owner_to_check()
    renamed = await files.rename(
        owner_id=owner_id, file_id=file_id, name=body.name, pending=pending
    )
    return _file_read(renamed)


@router.delete(
    "/{file_id}",
    status_code=204,
    responses=problem_responses(*AUTH_ERRORS, FileNotFound, ValidationFailed, *UNAVAILABLE),
    summary="Delete a file",
)
async def delete_file(file_id: str, caller: FilesWriterFolded, files: FilesDep) -> Response:
    owner_id, pending = caller.owner_to_check()
    await files.delete(owner_id=owner_id, file_id=file_id, pending=pending)
    return Response(status_code=204)


_BYTES = {"type": "string", "format": "binary"}
_DOWNLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    # The file's own media type, whatever the uploader declared or its name suggested.
    200: {"content": {"*/*": {"schema": _BYTES}}, "description": "The bytes."},
    206: {"content": {"*/*": {"schema": _BYTES}}, "description": "One byte range."},
    304: {"description": "`If-None-Match` matched the ETag."},
    307: {
        "description": "`redirect`: to a download link (`Location`), valid for "
        "`SEAU_LINK_MAX_TTL_SECONDS`."
    },
    **problem_responses(
        *AUTH_ERRORS, FileNotFound, RangeNotSatisfiable, ValidationFailed, *UNAVAILABLE
    ),
}
_DOWNLOAD_DESCRIPTION = (
    "Streams the bytes. Supports one `Range`, `If-None-Match` and `If-Range` "
    "(ETag = quoted SHA-256). `disposition=inline` is honoured only for safe media types. "
    "With `redirect=true` (the default when `SEAU_DOWNLOAD_REDIRECT` is on), a GET "
    "answers 307 to a download link instead, so the bytes can come from the bucket."
)
Disposition = Annotated[Literal["attachment", "inline"], Query()]
Redirect = Annotated[
    bool | None,
    Query(description="307 to a download link; default `SEAU_DOWNLOAD_REDIRECT`."),
]


def _header(name: str, description: str) -> dict[str, object]:
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


# Read from the request by `_content` (which takes them as they come, garbage included),
# declared here so the document shows them and clients and fuzzers know they exist.
_DOWNLOAD_HEADERS = {
    "parameters": [
        _header("Range", "One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix`."),
        _header("If-Range", "The strong ETag the range applies to."),
        _header("If-None-Match", "ETags the client has; a match answers 304."),
    ]
}


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses=_DOWNLOAD_RESPONSES,
    openapi_extra=_DOWNLOAD_HEADERS,
    summary="Download a file",
    description=_DOWNLOAD_DESCRIPTION,
)
async def download(
    request: Request,
    file_id: str,
    caller: FilesReaderFolded,
    state: StateDep,
    disposition: Disposition = "attachment",
    redirect: Redirect = None,
) -> Response:
    files, links = state.files, state.links
    if state.settings.download_redirect if redirect is None else redirect:
        owner_id, pending = caller.owner_to_check()
        row = await files.get(owner_id=owner_id, file_id=file_id, pending=pending)
        link = await links.issue(
            row,
            lifetime=links.max_ttl,
            inline=disposition_for(row.content_type, want_inline=disposition == "inline"),
        )
        # The link itself is the credential: no cache keeps it, no Referer carries it on.
        return Response(
            status_code=307,
            headers={
                "Location": _absolute(request, link.url),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )
    return await _content(request, file_id, caller, files, disposition, with_body=True)


@router.head(
    "/{file_id}/content",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
    openapi_extra=_DOWNLOAD_HEADERS,
    summary="A download's headers, without the bytes",
    description=_DOWNLOAD_DESCRIPTION,
)
async def download_head(
    request: Request,
    file_id: str,
    caller: FilesReaderFolded,
    files: FilesDep,
    disposition: Disposition = "attachment",
) -> Response:
    return await _content(request, file_id, caller, files, disposition, with_body=False)


async def _content(
    request: Request,
    file_id: str,
    caller: Principal,
    files: FilesDep,
    disposition: str,
    *,
    with_body: bool,
) -> Response:
    owner_id, pending = caller.owner_to_check()
    row = await files.get(owner_id=owner_id, file_id=file_id, pending=pending)
    return await _serve(
        request, row, files, want_inline=disposition == "inline", with_body=with_body
    )


async def _serve(
    request: Request,
    row: StoredFile,
    files: FilesDep,
    *,
    want_inline: bool,
    with_body: bool,
    extra_headers: dict[str, str] | None = None,
) -> Response:
    """A ready file's bytes (or headers) with the download headers: for the owner's
    API and for the download links seau signs itself."""
    assert row.sha256 is not None  # ready rows always have one
    plan = plan_download(
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        updated_at=row.updated_at,
        inline=disposition_for(row.content_type, want_inline=want_inline),
        conditions=Conditions(
            if_none_match=_field(request, "if-none-match"),
            if_range=_field(request, "if-range"),
            range=_field(request, "range"),
        ),
    )
    plan.headers.update(extra_headers or {})
    if plan.status == 304:
        return Response(status_code=304, headers=plan.headers)
    if not with_body:
        return Response(status_code=plan.status, headers=plan.headers, media_type=row.content_type)
    stream = await files.open_content(row, start=plan.start, end=plan.end)
    return _Relay(
        stream, status_code=plan.status, headers=plan.headers, media_type=row.content_type
    )


def _field(request: Request, name: str) -> str | None:
    """Every line of a header field as one value (RFC 9110 section 5.3).

    Reading only the first would let `Range: bytes=0-1` twice mean one range here and
    something else to a cache in front: combined, it is two ranges, a 416.
    """
    lines = request.headers.getlist(name)
    return ", ".join(lines) if lines else None


async def _relay(stream: ByteStream) -> AsyncGenerator[bytes]:
    # Closing on every exit (done, client gone, storage failure) releases the
    # store's connection or file. A storage failure mid-body propagates, and
    # the server aborts the connection: a short body is never a clean 2xx.
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()


class _Relay(StreamingResponse):
    """A download's bytes: a body that the store hands over in one chunk (every
    small file: the local store reads up to 1 MiB in its first trip) goes out as
    one message, as a `Response` sends it; a longer one streams.

    Starlette streams beside a task that listens for the client going away (a task
    group and two tasks per response, and one more message through every
    middleware), which only matters while a body is still being read: about a
    tenth of a 4 KiB download's event-loop time (docs/benchmarks.md).
    """

    def __init__(
        self, stream: ByteStream, *, status_code: int, headers: dict[str, str], media_type: str
    ) -> None:
        self._chunks = _relay(stream)
        super().__init__(
            self._chunks, status_code=status_code, headers=headers, media_type=media_type
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await anext(self._chunks, None)
        second = None if first is None else await anext(self._chunks, None)
        if second is None:
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": first or b"", "more_body": False})
            return
        assert first is not None
        self.body_iterator = _then(first, second, self._chunks)
        await super().__call__(scope, receive, send)


async def _then(first: bytes, second: bytes, rest: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
    try:
        yield first
        yield second
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


_CONTENT_PATH = re.compile(r"/api/v1/files/([^/]+)/content")
_DISPOSITIONS = {
    b"": "attachment",
    b"disposition=attachment": "attachment",
    b"disposition=inline": "inline",
}
_READ = SecurityScopes([AccessScope.FILES_READ])


class ContentLane:
    """GET and HEAD of a file's content, answered without FastAPI's routing and
    dependency solving: the most frequent request of all, and the one where those
    layers cost the most next to the work itself (docs/benchmarks.md). The routes
    `download` and `download_head` above declare the operation to OpenAPI and answer
    every request the lane passes on: one without a bearer token, with a body, with a
    query other than one `disposition`, under a root path, or a GET on a server that
    redirects downloads. Both run the same checks (`seau.deps.verified`), the same
    statement and the same `_serve`; errors are rendered by the app's own renderer
    (tests/api/test_content_lane.py holds the two to the same answers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The routes the lane answers for: the metrics and the access log name a
        # request by its route.
        self._routes = {
            method: route
            for route in router.routes
            for method, endpoint in (("GET", download), ("HEAD", download_head))
            if getattr(route, "endpoint", None) is endpoint
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self._take(scope)
        if lane is None:
            await self.app(scope, receive, send)
            return
        file_id, disposition, token = lane
        state: AppState = scope["app"].state.seau
        with_body = scope["method"] == "GET"
        if with_body and state.settings.download_redirect:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._routes[scope["method"]]
        request = Request(scope, receive)
        try:
            caller = await verified(_READ, request, state, token, fold=True)
            response = await _content(
                request, file_id, caller, state.files, disposition, with_body=with_body
            )
        except SeauError as error:
            response = await error_response(request, error)
        await response(scope, receive, send)

    @staticmethod
    def _take(scope: Scope) -> tuple[str, str, str] | None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return None
        if scope.get("root_path"):
            return None
        match = _CONTENT_PATH.fullmatch(scope["path"])
        disposition = _DISPOSITIONS.get(scope["query_string"])
        if match is None or disposition is None:
            return None
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() != b"bearer" or not credentials or token is not None:
                    return None
                token = credentials.decode("latin-1")
            elif name in (b"content-length", b"transfer-encoding") and value != b"0":
                return None
        if token is None:
            return None
        return match.group(1), disposition, token


# -- download links ------------------------------------------------------------


def _absolute(request: Request, url: str) -> str:
    """A store's presigned URL as it is; a seau path under `SEAU_PUBLIC_URL` when set."""
    return public_url(request, url) if url.startswith("/") else url


@router.post(
    "/{file_id}/link",
    response_model=LinkCreated,
    responses=problem_responses(
        *AUTH_ERRORS, FileNotFound, InvalidLink, ValidationFailed, *UNAVAILABLE
    ),
    summary="A short-lived download link",
    description="A URL that downloads the file without a token until `expires_at` "
    "(at most `SEAU_LINK_MAX_TTL_SECONDS`, the default `expires_in`). On S3 a presigned "
    "GET, so the bytes come from the bucket; on the local store a URL of seau's, signed "
    "with its secret key, that honours `Range`, `If-None-Match`, `If-Range` and `HEAD`. "
    "Either way the file's safe content type and a `Content-Disposition` with its name; "
    "`inline` only for safe media types. Anyone holding the URL can use it.",
)
async def create_link(
    request: Request,
    file_id: str,
    caller: FilesReader,
    files: FilesDep,
    links: LinksDep,
    body: LinkCreate | None = None,
) -> LinkCreated:
    body = body or LinkCreate()
    lifetime = links.lifetime(body.expires_in)
    row = await files.get(owner_id=caller.owner, file_id=file_id)
    link = await links.issue(
        row,
        lifetime=lifetime,
        inline=disposition_for(row.content_type, want_inline=body.disposition == "inline"),
    )
    return LinkCreated(url=_absolute(request, link.url), expires_at=link.expires_at)


_LINK_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"*/*": {"schema": _BYTES}}, "description": "The bytes."},
    206: {"content": {"*/*": {"schema": _BYTES}}, "description": "One byte range."},
    304: {"description": "`If-None-Match` matched the ETag."},
    **problem_responses(
        LinkNotFound,
        LinkExpired,
        FileNotFound,
        RangeNotSatisfiable,
        ValidationFailed,
        *UNAVAILABLE,
    ),
}
_LINK_DESCRIPTION = (
    "A download link seau signed (from `POST /api/v1/files/{id}/link` on the local store), "
    "served with the API's download headers: one `Range`, `If-None-Match`, `If-Range`. "
    "A link seau did not sign answers 404 `link_not_found`, an expired one 410 "
    "`link_expired`, one whose file was deleted 404 `file_not_found`."
)
LinkToken = Annotated[str, Path(max_length=256, description="The signed link.")]
# Like a share link, the URL is the credential: keep it out of Referer headers.
_LINK_HEADERS = {"Referrer-Policy": "no-referrer"}


@links_router.get(
    "/{token}",
    response_class=StreamingResponse,
    responses=_LINK_RESPONSES,
    openapi_extra=_DOWNLOAD_HEADERS,
    summary="Download through a link",
    description=_LINK_DESCRIPTION,
)
async def link_content(
    request: Request, token: LinkToken, files: FilesDep, links: LinksDep
) -> Response:
    return await _link(request, token, files, links, with_body=True)


@links_router.head(
    "/{token}",
    response_class=Response,
    responses=_LINK_RESPONSES,
    openapi_extra=_DOWNLOAD_HEADERS,
    summary="A link's download headers, without the bytes",
    description=_LINK_DESCRIPTION,
)
async def link_content_head(
    request: Request, token: LinkToken, files: FilesDep, links: LinksDep
) -> Response:
    return await _link(request, token, files, links, with_body=False)


async def _link(
    request: Request, token: str, files: FilesDep, links: LinksDep, *, with_body: bool
) -> Response:
    claims = links.verify(token)
    row = await files.get(owner_id=claims.owner_id, file_id=str(claims.file_id))
    return await _serve(
        request,
        row,
        files,
        want_inline=claims.inline,
        with_body=with_body,
        extra_headers=_LINK_HEADERS,
    )
