"""A cap on the body of every request but those whose route says it streams.

JSON and form bodies (sign-up, sign-in, rename) are read whole before they are
validated, and before authentication, so without a cap an anonymous client could make
the server hold any amount: one 600 MiB PATCH of a file's name took a server from
82 MiB to 1.3 GiB resident. The upload routes stream their bodies to storage under
their own limits; each one says so with `@streams_body`, and every other route (any
route added later included) is capped here, whether or not it reads its body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seau.errors import RequestTooLarge
from seau.problems import problem_response

MAX_SMALL_BODY_BYTES: Final = 1024 * 1024

_STREAMS_BODY: Final = "_seau_streams_body"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def streams_body(endpoint: Endpoint) -> Endpoint:
    """Exempt a route's endpoint from the cap: it reads its body as a stream and
    enforces its own limits while it does."""
    setattr(endpoint, _STREAMS_BODY, True)
    return endpoint


def route_streams_body(route: BaseRoute | RouteContext) -> bool:
    return getattr(getattr(route, "endpoint", None), _STREAMS_BODY, False) is True


@dataclass(frozen=True, slots=True)
class _Operation:
    path: re.Pattern[str]
    methods: frozenset[str] | None  # None: any method (a mount)
    streams: bool


def _operations(routes: Sequence[BaseRoute]) -> tuple[_Operation, ...]:
    """The app's routes in the order its router tries them, as FastAPI walks them
    for the OpenAPI document (included routers are not flattened into `app.routes`)."""
    return tuple(
        _Operation(
            path=context.path_regex,
            methods=frozenset(context.methods) if context.methods else None,
            streams=route_streams_body(context),
        )
        for context in iter_route_contexts(routes)
        if getattr(context, "path_regex", None) is not None
    )


class SmallBodyLimit:
    """Reads the body of a capped request before the app runs, up to the cap.

    Reading it first answers 413 the same way on every capped route, including those
    that never read their body (the unread rest would otherwise be read and thrown
    away by the server, with no limit); what the app then receives is at most the cap.
    The route is the first whose path and method match, as the router picks it;
    ``routes`` is the app's own list, read at the first request, once all are added.
    """

    def __init__(
        self, app: ASGIApp, *, routes: Sequence[BaseRoute], limit: int = MAX_SMALL_BODY_BYTES
    ) -> None:
        self.app = app
        self.routes = routes
        self.limit = limit
        self._table: tuple[_Operation, ...] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._streams(scope):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(scope, receive, send)
                return
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app sees it as it would have
            received += len(message.get("body", b""))
            if received > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        messages.reverse()

        async def replay() -> Message:
            # After the body, receive() is the server's again: it tells of a disconnect.
            return messages.pop() if messages else await receive()

        await self.app(scope, replay, send)

    def _streams(self, scope: Scope) -> bool:
        if self._table is None:
            self._table = _operations(self.routes)
        path, method = _route_path(scope), scope["method"]
        for operation in self._table:
            if operation.path.match(path) and (
                operation.methods is None or method in operation.methods
            ):
                return operation.streams
        return False

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLarge(f"request bodies here are limited to {self.limit} bytes")
        response = problem_response(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            request=Request(scope),
            # The rest of the body is never read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the ``root_path`` a proxy or a mount put
    in front (as Starlette's router computes it; its helper is private)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path
