"""Share links over HTTP: the owner's API under `/api/v1`, and the link itself under
`/s/{token}` (a page made by the server, and the content) for anyone, no account."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request, Response, Security
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPBasic

from seau.deps import FilesReader, FilesWriter, IdempotencyDep, SharesDep
from seau.errors import (
    DatabaseUnavailable,
    FileNotFound,
    InsufficientScope,
    InvalidShare,
    InvalidToken,
    NotAuthenticated,
    PasswordHashingBusy,
    RangeNotSatisfiable,
    SeauError,
    ShareExhausted,
    ShareExpired,
    ShareNotFound,
    SharePasswordRequired,
    StorageUnavailableError,
    SubjectRequired,
    TokenExpired,
    TooManyAttempts,
    ValidationFailed,
    WrongSharePassword,
)
from seau.files.http import Conditions, plan_download
from seau.idempotent import IDEMPOTENCY_ERRORS, IDEMPOTENCY_KEY, once
from seau.problems import problem_responses
from seau.proxy import public_url
from seau.shares import page
from seau.shares.schemas import ShareCreate, ShareCreated, ShareList, ShareRead
from seau.shares.service import NewShare, Opened, ShareService, ShareView
from seau.storage import ByteStream

api_router = APIRouter(prefix="/api/v1", tags=["shares"])
link_router = APIRouter(prefix="/s", tags=["share links"])

AUTH_ERRORS = (NotAuthenticated, InvalidToken, TokenExpired, InsufficientScope, SubjectRequired)
UNAVAILABLE = (StorageUnavailableError, DatabaseUnavailable)
LINK_ERRORS = (
    ShareNotFound,
    ShareExpired,
    ShareExhausted,
    SharePasswordRequired,
    WrongSharePassword,
    TooManyAttempts,
    PasswordHashingBusy,
)


def _read(view: ShareView) -> ShareRead:
    return ShareRead(
        id=view.id,
        file_id=view.file_id,
        file_name=view.file_name,
        created_at=view.created_at,
        expires_at=view.expires_at,
        max_downloads=view.max_downloads,
        downloads=view.downloads,
        has_password=view.has_password,
    )


# -- the owner's API ---------------------------------------------------------


@api_router.post(
    "/files/{file_id}/shares",
    status_code=201,
    response_model=ShareCreated,
    responses=problem_responses(
        *AUTH_ERRORS,
        FileNotFound,
        InvalidShare,
        ValidationFailed,
        PasswordHashingBusy,
        *IDEMPOTENCY_ERRORS,
        *UNAVAILABLE,
    ),
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
    summary="Share a file by link",
    description="Anyone with the answer's `url` may download the file until it expires, "
    "the downloads are used up, or the share is revoked. The URL's secret is in this "
    "answer only (and, sealed with the key, in what an `Idempotency-Key` keeps for a "
    "retry).",
)
async def create_share(
    request: Request,
    file_id: str,
    body: ShareCreate,
    caller: FilesWriter,
    shares: SharesDep,
    idempotency: IdempotencyDep,
) -> ShareCreated | Response:
    async with once(
        request, idempotency, caller.owner, body=body.model_dump_json().encode()
    ) as run:
        if run.replay is not None:
            return run.replay
        made = await shares.create(
            owner_id=caller.owner,
            file_id=file_id,
            expires_in=body.expires_in,
            password=body.password,
            max_downloads=body.max_downloads,
            # The answer commits with the share.
            in_commit=run.in_commit(lambda made: _created(_share_created(request, made))),
        )
        created = _share_created(request, made)
        if not run.claimed:
            return created
        return run.keep(_created(created))


def _share_created(request: Request, made: NewShare) -> ShareCreated:
    return ShareCreated(
        **_read(made.view).model_dump(), url=public_url(request, f"/s/{made.token}")
    )


def _created(created: ShareCreated) -> Response:
    return Response(created.model_dump_json(), status_code=201, media_type="application/json")


@api_router.get(
    "/shares",
    response_model=ShareList,
    responses=problem_responses(*AUTH_ERRORS, ValidationFailed, *UNAVAILABLE),
    summary="List my shares",
    description="Newest first, with their download counts; never their secrets.",
)
async def list_shares(caller: FilesReader, shares: SharesDep) -> ShareList:
    return ShareList(items=[_read(v) for v in await shares.list(owner_id=caller.owner)])


@api_router.get(
    "/files/{file_id}/shares",
    response_model=ShareList,
    responses=problem_responses(*AUTH_ERRORS, FileNotFound, ValidationFailed, *UNAVAILABLE),
    summary="List a file's shares",
)
async def list_file_shares(file_id: str, caller: FilesReader, shares: SharesDep) -> ShareList:
    views = await shares.list(owner_id=caller.owner, file_id=file_id)
    return ShareList(items=[_read(v) for v in views])


@api_router.delete(
    "/shares/{share_id}",
    status_code=204,
    responses=problem_responses(*AUTH_ERRORS, ShareNotFound, ValidationFailed, *UNAVAILABLE),
    summary="Revoke a share",
    description="Every instance refuses the link from the next request (404 `share_not_found`).",
)
async def revoke_share(share_id: str, caller: FilesWriter, shares: SharesDep) -> Response:
    await shares.revoke(owner_id=caller.owner, share_id=share_id)
    return Response(status_code=204)


# -- the link, for anyone ----------------------------------------------------


class _SharePassword(HTTPBasic):
    """Declares HTTP Basic in the OpenAPI document; reads the password leniently (any
    user name; UTF-8, else Latin-1 as older browsers send it) and never fails."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return basic_password(request.headers.get("authorization"))


def basic_password(header: str | None) -> str | None:
    """The password of an HTTP Basic ``Authorization`` value; None for anything else."""
    if header is None:
        return None
    scheme, _, param = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(param.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    _, colon, password = decoded.partition(":")
    return password if colon else None


_password = _SharePassword(
    scheme_name="share_password",
    description="A share's password, when it has one: HTTP Basic with any user name "
    "(`curl -u :secret`).",
    auto_error=False,
)
SharePassword = Annotated[str | None, Security(_password)]
Token = Annotated[str, Path(max_length=64, description="The link's secret.")]

_BYTES = {"type": "string", "format": "binary"}
_CONTENT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"*/*": {"schema": _BYTES}}, "description": "The bytes (counted)."},
    206: {"content": {"*/*": {"schema": _BYTES}}, "description": "One byte range."},
    304: {"description": "`If-None-Match` matched the ETag."},
    **problem_responses(*LINK_ERRORS, RangeNotSatisfiable, ValidationFailed, *UNAVAILABLE),
}
_CONTENT_DESCRIPTION = (
    "The shared file, always as an attachment, with the API's download headers: one "
    "`Range`, `If-None-Match`, `If-Range` (ETag = quoted SHA-256). A download is counted "
    "when a GET starts at byte 0 (not a resumed range, not HEAD, not a 304); past "
    "`max_downloads` the link answers 410 `share_exhausted`."
)


def _header(name: str, description: str) -> dict[str, object]:
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


_CONTENT_HEADERS = {
    "parameters": [
        _header("Range", "One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix`."),
        _header("If-Range", "The strong ETag the range applies to."),
        _header("If-None-Match", "ETags the client has; a match answers 304."),
    ]
}


@link_router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The page: name, size, download."},
        401: {"content": {"text/html": {}}, "description": "A wrong password (HTTP Basic)."},
        404: {"content": {"text/html": {}}, "description": "No such share (or revoked)."},
        410: {"content": {"text/html": {}}, "description": "Expired, or downloads used up."},
        429: {"content": {"text/html": {}}, "description": "Too many wrong passwords."},
        **problem_responses(ValidationFailed, PasswordHashingBusy, *UNAVAILABLE),
    },
    summary="A share link's page",
    description="HTML made by the server, no script: the file's name and size and a "
    "download button; for a share with a password, a password field instead (or the "
    "name and size once HTTP Basic gave the password).",
)
async def share_page(token: Token, shares: SharesDep, password: SharePassword) -> Response:
    try:
        opened = await shares.open(token, password=password)
    except SharePasswordRequired:
        return _html(page.password_page(token=token), status=200)
    except SeauError as error:
        return _error_page(token, error)
    return _html(
        page.download_page(token=token, name=opened.file.name, size=opened.file.size),
        status=200,
    )


@link_router.get(
    "/{token}/content",
    response_class=StreamingResponse,
    responses=_CONTENT_RESPONSES,
    openapi_extra=_CONTENT_HEADERS,
    summary="Download a shared file",
    description=_CONTENT_DESCRIPTION,
)
async def share_content(
    request: Request, token: Token, shares: SharesDep, password: SharePassword
) -> Response:
    opened = await shares.open(token, password=password)
    return await _content(request, shares, opened, with_body=True)


@link_router.head(
    "/{token}/content",
    response_class=Response,
    responses=_CONTENT_RESPONSES,
    openapi_extra=_CONTENT_HEADERS,
    summary="A shared download's headers, without the bytes (not counted)",
    description=_CONTENT_DESCRIPTION,
)
async def share_content_head(
    request: Request, token: Token, shares: SharesDep, password: SharePassword
) -> Response:
    opened = await shares.open(token, password=password)
    return await _content(request, shares, opened, with_body=False)


@link_router.post(
    "/{token}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"*/*": {"schema": _BYTES}}, "description": "The bytes (counted)."},
        401: {"content": {"text/html": {}}, "description": "The page again: wrong password."},
        404: {"content": {"text/html": {}}, "description": "No such share (or revoked)."},
        410: {"content": {"text/html": {}}, "description": "Expired, or downloads used up."},
        429: {"content": {"text/html": {}}, "description": "Too many wrong passwords."},
        **problem_responses(ValidationFailed, PasswordHashingBusy, *UNAVAILABLE),
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": {"password": {"type": "string"}}}
                }
            }
        }
    },
    summary="Download a shared file from the page's password form",
    description="What the page's form sends, for browsers without script: the password "
    "as a form field. The whole file, counted; errors come back as the page (HTML).",
)
async def share_content_form(request: Request, token: Token, shares: SharesDep) -> Response:
    password: str | None = None
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # The body is bounded by seau.limits (1 MiB) like every non-upload request.
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        password = next(iter(fields.get("password", [])), None)
    try:
        opened = await shares.open(token, password=password)
        return await _content(request, shares, opened, with_body=True, whole=True)
    except SeauError as error:
        return _error_page(token, error)


async def _content(
    request: Request,
    shares: ShareService,
    opened: Opened,
    *,
    with_body: bool,
    whole: bool = False,
) -> Response:
    file = opened.file
    assert file.sha256 is not None  # ready rows always have one
    conditions = Conditions()
    if not whole:
        conditions = Conditions(
            if_none_match=_field(request, "if-none-match"),
            if_range=_field(request, "if-range"),
            range=_field(request, "range"),
        )
    plan = plan_download(
        name=file.name,
        size=file.size,
        sha256=file.sha256,
        updated_at=file.updated_at,
        inline=False,
        conditions=conditions,
    )
    # The secret is in the URL: keep it out of Referer headers.
    plan.headers["Referrer-Policy"] = "no-referrer"
    if plan.status == 304:
        return Response(status_code=304, headers=plan.headers)
    if not with_body:
        return Response(status_code=plan.status, headers=plan.headers, media_type=file.content_type)
    stream = await shares.open_content(opened, start=plan.start, end=plan.end)
    if plan.start == 0:
        # Counted once the store has the bytes ready, so that a store failure costs
        # no download; refused here, the stream is closed unread.
        try:
            await shares.count_download(opened)
        except BaseException:
            await stream.aclose()
            raise
    return StreamingResponse(
        _relay(stream), status_code=plan.status, headers=plan.headers, media_type=file.content_type
    )


def _field(request: Request, name: str) -> str | None:
    """Every line of a header field as one value (RFC 9110 section 5.3)."""
    lines = request.headers.getlist(name)
    return ", ".join(lines) if lines else None


async def _relay(stream: ByteStream) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()


def _html(body: str, *, status: int, headers: dict[str, str] | None = None) -> Response:
    return HTMLResponse(body, status_code=status, headers={**page.PAGE_HEADERS, **(headers or {})})


_PAGE_ERRORS = (
    ShareNotFound,
    ShareExpired,
    ShareExhausted,
    SharePasswordRequired,
    WrongSharePassword,
    TooManyAttempts,
)
_MESSAGES: dict[type[SeauError], tuple[str, str]] = {
    ShareNotFound: (
        "Link not found",
        "This link does not exist, was revoked, or its file was deleted.",
    ),
    ShareExpired: ("Link expired", "This link has expired."),
    ShareExhausted: ("Link used up", "This link has been used as many times as it allows."),
    TooManyAttempts: ("Too many wrong passwords", "Wait a little, then try again."),
}


def _error_page(token: str, error: SeauError) -> Response:
    """An error of the link as a page, for people; the status and headers stay the
    error's own (401 keeps its Basic challenge, 429 its Retry-After). Any other error
    (the database or the store unreachable) stays a problem, as documented."""
    if not isinstance(error, _PAGE_ERRORS):
        raise error
    if isinstance(error, SharePasswordRequired | WrongSharePassword):
        text = "Wrong password; try again." if isinstance(error, WrongSharePassword) else None
        return _html(
            page.password_page(token=token, error=text), status=error.status, headers=error.headers
        )
    title, message = next(
        (texts for kind, texts in _MESSAGES.items() if isinstance(error, kind)),
        (error.title, error.detail),
    )
    return _html(
        page.message_page(title=title, message=message), status=error.status, headers=error.headers
    )
