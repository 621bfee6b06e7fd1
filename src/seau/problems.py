"""RFC 9457 problem details: the one shape of every non-2xx response."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from seau.errors import (
    InvalidToken,
    MethodNotAllowed,
    NotFound,
    SeauError,
    ServiceUnavailable,
    ValidationFailed,
)

log = logging.getLogger("seau")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    # Some problem types add members of their own (RFC 9457 section 3.2); the codes
    # that do say which in their description (`quota_exceeded`: `unit`, `limit`,
    # `used`, `reserved`, `remaining`).
    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem: `urn:seau:problem:<code>`.")
    title: str
    status: int
    code: str = Field(description="Stable machine-readable error code.")
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation errors, for `validation_error`."
    )
    request_id: str | None = Field(
        default=None, description="Also in the `X-Request-ID` header and the server's log."
    )


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    body = Problem(
        **(extensions or {}),
        type=f"urn:seau:problem:{code}",
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors,
        request_id=getattr(request.state, "request_id", None) if request is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _render(request: Request, error: SeauError) -> Response:
    return problem_response(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        request=request,
        headers=error.headers,
        extensions=error.extensions,
    )


async def owner_first(request: Request, status: int) -> SeauError | None:
    """The token's refusal, if a refusal with ``status`` must give way to it.

    Routes that fold a sign-in's owner check into their first statement
    (`seau.deps.folding_principal`) would otherwise tell a signed-out or disabled
    account's token 400, 413 or 422 for a request refused before that statement,
    as if the token still passed. Here, once, for every such refusal: the check is
    made on its own first, and its 401 wins. Not for 401 itself, 403 (the token's
    scopes, known without the database), 404 (on these routes only the file's
    statement answers it, having made the check: `FileService._owned`) or 429
    (shedding load must not cost a query); a database that cannot answer leaves
    the first refusal as it was."""
    confirm = getattr(request.state, "confirm_owner", None)
    if confirm is None or not 400 <= status < 500 or status in (401, 403, 404, 429):
        return None
    try:
        await confirm()
    except InvalidToken as refused:
        return refused
    except SeauError:
        return None
    return None


async def _seau_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SeauError)
    return await error_response(request, exc)


async def error_response(request: Request, exc: SeauError) -> Response:
    """The problem document for ``exc``, as the app's handler renders it: for code
    that answers before the app's exception handlers (`seau.files.routes.ContentLane`)."""
    exc = await owner_first(request, exc.status) or exc
    if isinstance(exc, ServiceUnavailable):
        state = getattr(request.app.state, "seau", None)
        if state is not None:
            exc.headers["Retry-After"] = str(state.settings.retry_after_seconds)
    return _render(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if (refused := await owner_first(request, ValidationFailed.status)) is not None:
        return _render(request, refused)
    # Only where and what: echoing the input back could reflect secrets.
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]
    error = ValidationFailed("the request does not match the API's schema")
    return problem_response(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        request=request,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if (refused := await owner_first(request, exc.status_code)) is not None:
        return _render(request, refused)
    if exc.status_code == 400:
        # FastAPI and Starlette raise a bare 400 when a JSON or form body cannot be read
        # at all (bytes that are not UTF-8, a form field over Starlette's size limit),
        # where a body that reads but is not valid JSON is a 422. Both are the client's
        # body failing the API's schema: one answer, the one every route documents.
        unreadable = ValidationFailed("the request body cannot be read")
        return problem_response(
            status=unreadable.status,
            code=unreadable.code,
            title=unreadable.title,
            detail=unreadable.detail,
            request=request,
            errors=[{"loc": ["body"], "msg": str(exc.detail), "type": "body_unreadable"}],
        )
    known: dict[int, type[SeauError]] = {404: NotFound, 405: MethodNotAllowed}
    if exc.status_code in known:
        error = known[exc.status_code]()
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed_methods(request, headers.get("Allow"))):
            headers["Allow"] = allowed
        return problem_response(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            request=request,
            headers=headers,
        )
    return problem_response(
        status=exc.status_code,
        code=f"http_{exc.status_code}",
        title=str(exc.detail),
        detail=str(exc.detail),
        request=request,
        headers=dict(exc.headers or {}),
    )


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@functools.lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


def _allowed_methods(request: Request, fallback: str | None) -> str | None:
    """Every method the resource answers (RFC 9110 section 15.5.6), as documented.

    Starlette's 405 lists only the methods of the first route whose path matched, while
    seau declares one route per method on the same path. The OpenAPI document is the
    public list of them all; a path it does not show keeps the framework's answer.
    """
    path = request.scope["path"]
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _path_pattern(template).fullmatch(path):
            methods |= {method.upper() for method in operations if method in _METHODS}
    return ", ".join(sorted(methods)) if methods else fallback


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(request, SeauError())


def install(app: FastAPI) -> None:
    app.add_exception_handler(SeauError, _seau_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def problem_responses(*errors: type[SeauError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the errors a route can answer."""
    by_status: dict[int, list[type[SeauError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": "; ".join(_describe(e) for e in group),
        }
        for status, group in sorted(by_status.items())
    }


def _describe(error: type[SeauError]) -> str:
    text = f"`{error.code}`: {error.title}"
    if error.members:
        text += " (members: " + ", ".join(f"`{m}`" for m in error.members) + ")"
    return text
