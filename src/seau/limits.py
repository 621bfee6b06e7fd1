"""A cap on the body of every request that is not an upload.

JSON and form bodies (sign-up, sign-in, rename) are read whole before they are
validated, so without a cap an anonymous client could make the server hold any
amount: a 200 MiB sign-up left a server at 514 MiB. Upload routes stream their
bodies to storage under their own limits and are not capped here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seau.errors import PayloadTooLarge
from seau.problems import problem_response

MAX_SMALL_BODY_BYTES = 1024 * 1024

# Routes that stream their bodies: the files upload and tus resumable uploads.
_STREAMING_PREFIXES = ("/api/v1/files", "/api/v1/uploads")


class RequestTooLarge(PayloadTooLarge):
    code = "request_too_large"
    title = "Request body too large"


class SmallBodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int = MAX_SMALL_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._streams(scope):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(scope, receive, send)
                return
        received = 0
        exceeded = False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    # The app sees the body end here; its answer is replaced below.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, receive, send)
            # Anything else the app sends after the cap was crossed is dropped.

        await self.app(scope, bounded_receive, guarded_send)

    def _streams(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return scope.get("method") in ("POST", "PATCH") and path.startswith(_STREAMING_PREFIXES)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLarge(f"request bodies here are limited to {self.limit} bytes")
        response = problem_response(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            request=Request(scope),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
