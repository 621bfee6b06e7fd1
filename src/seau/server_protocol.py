"""uvicorn's httptools protocol with a bound on the request head.

uvicorn bounds the request line and headers only with its h11 protocol; with
httptools (what `uvicorn[standard]` picks, and measurably faster) it buffers a
head of any size: 256 MiB of header took a server to 565 MiB. This subclass
counts the bytes received while a head is incomplete and answers 431 past the
limit, before anything reaches the app.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_REQUEST_HEAD_BYTES = 64 * 1024

_BODY = json.dumps(
    {
        "type": "urn:seau:problem:request_header_too_large",
        "title": "Request header fields too large",
        "status": 431,
        "code": "request_header_too_large",
        "detail": f"the request line and headers exceed {MAX_REQUEST_HEAD_BYTES} bytes",
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/problem+json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_pending = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._head_pending:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: one read may carry a small head and a large body.
        if (
            self._head_pending
            and self._head_bytes > MAX_REQUEST_HEAD_BYTES
            and not self.transport.is_closing()
        ):
            self.transport.write(_RESPONSE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_pending = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_pending = False
        super().on_headers_complete()
