"""uvicorn's httptools protocol with bounds on the request head and on a stalled body.

uvicorn bounds the request line and headers only with its h11 protocol; with
httptools (what `uvicorn[standard]` picks, and measurably faster) it buffers a
head of any size: 256 MiB of header took a server to 565 MiB. This subclass
counts the bytes received while a head is incomplete and answers 431 past the
limit, before anything reaches the app.

Neither protocol bounds time: a connection that sends nothing, or its head one
byte a minute, or stops in the middle of a body, is held for ever. Two clocks
bound it here (docs/decisions.md, "Slow clients"):

- the head clock runs from the connection's first moment, and from the first
  byte of each later request, until its head is complete: past
  ``head_timeout``, 408 and the connection is closed;
- the body clock runs while a body is incomplete and the server is waiting for
  the client (reading not paused because the app is behind, no
  ``Expect: 100-continue`` still unanswered): ``body_idle_timeout`` without a
  byte, and the connection is closed, after a 408 when no answer has started.
  The app sees the disconnect it sees when a client vanishes, and cleans up
  as it does then.

Between requests uvicorn's own keep-alive timeout applies.
"""

from __future__ import annotations

import json
from asyncio import TimerHandle
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_REQUEST_HEAD_BYTES = 64 * 1024


def _problem(status: int, reason: str, code: str, title: str, detail: str) -> bytes:
    body = json.dumps(
        {
            "type": f"urn:seau:problem:{code}",
            "title": title,
            "status": status,
            "code": code,
            "detail": detail,
        }
    ).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/problem+json\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


_TOO_LARGE = _problem(
    431,
    "Request Header Fields Too Large",
    "request_header_too_large",
    "Request header fields too large",
    f"the request line and headers exceed {MAX_REQUEST_HEAD_BYTES} bytes",
)
_HEAD_TIMEOUT = _problem(
    408,
    "Request Timeout",
    "request_timeout",
    "Request timeout",
    "the request line and headers did not arrive in time",
)
_BODY_TIMEOUT = _problem(
    408,
    "Request Timeout",
    "request_timeout",
    "Request timeout",
    "the request body stopped arriving",
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    # Set once per worker process by `set_timeouts`, before the first connection:
    # uvicorn builds the protocol itself, from the class (pickled by name into
    # each worker), so there is no argument to pass them in.
    head_timeout: ClassVar[float] = 30.0
    body_idle_timeout: ClassVar[float] = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_pending = True
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None
        self._body_pending = False
        self._body_timer: TimerHandle | None = None
        self._body_last_byte = 0.0
        self._draining = False

    @classmethod
    def set_timeouts(cls, *, head: float, body_idle: float) -> None:
        cls.head_timeout = head
        cls.body_idle_timeout = body_idle

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_pending:
            self._head_bytes += len(data)
        if self._body_pending:
            self._body_last_byte = self.loop.time()
        super().data_received(data)
        if self.transport.is_closing():
            return
        # Checked after parsing: one read may carry a small head and a large body.
        if self._head_pending and self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            self.transport.write(_TOO_LARGE)
            self.transport.close()
        elif self._head_pending:
            # The first byte of a later request on a kept-alive connection.
            self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_pending = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._cancel_head_timer()
        self._body_pending = True
        self._body_last_byte = self.loop.time()
        self._body_timer = self.loop.call_later(self.body_idle_timeout, self._body_clock)
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        """Graceful shutdown (SIGTERM): finish, then close, without racing a proxy.

        uvicorn closes an idle kept-alive connection at once. A proxy may be writing
        its next request onto that connection at that very moment, and it cannot
        send a POST or PATCH it wrote elsewhere: nginx answered 502 to uploads during
        rolling restarts (bench/scale.py). So an idle connection stays open: a
        request that still arrives on it is served and answered with `Connection:
        close`, and the proxy closes the others itself, at its keep-alive timeout
        (shorter than ours; deploy/nginx.conf) or ours closes them when it expires.
        uvicorn waits for them, at most SEAU_SHUTDOWN_TIMEOUT_SECONDS.
        """
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._cancel_body_timer()
        super().on_message_complete()

    # -- the head clock ---------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._head_pending:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being sent: let that response
            # finish, then close instead of reading on.
            self.cycle.keep_alive = False
            return
        self.transport.write(_HEAD_TIMEOUT)
        self.transport.close()

    # -- the body clock ---------------------------------------------------------

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _waiting_for_client(self) -> bool:
        # Paused: the app has not taken what came; an unanswered 100-continue: the
        # client rightly waits for the app to ask. Neither is the client's delay.
        return not self.flow.read_paused and not (
            self.cycle is not None and self.cycle.waiting_for_100_continue
        )

    def _body_clock(self) -> None:
        self._body_timer = None
        if not self._body_pending or self.transport.is_closing():
            return
        now = self.loop.time()
        if not self._waiting_for_client():
            # Not the client's delay: its clock starts again when the server reads.
            self._body_last_byte = now
            self._body_timer = self.loop.call_later(
                min(1.0, self.body_idle_timeout), self._body_clock
            )
            return
        remaining = self._body_last_byte + self.body_idle_timeout - now
        if remaining > 0:
            self._body_timer = self.loop.call_later(remaining, self._body_clock)
            return
        self._body_pending = False
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            # Whatever the app answers after this goes nowhere: the 408 is the answer.
            cycle.disconnected = True
            self.transport.write(_BODY_TIMEOUT)
        self.transport.close()
